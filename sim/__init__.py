"""The simulated patient: gait schedule, sensors, muscle, ankle, and the limb that joins them."""
