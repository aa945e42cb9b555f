"""Shipped TOML configs (patient profiles, stimulation presets, limits); data only."""
