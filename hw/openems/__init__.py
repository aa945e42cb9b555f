"""openEMSstim (open hardware that switches and scales a TENS unit's output) driven over
its own upstream firmware, either version: ``driver.OpenEmsStim`` is the
``controller.ports.Stimulator``; ``firmware`` holds what the host must know of the
firmware, ``budget`` its timing, ``intensity`` the amplitude mapping, ``settings`` the
installation's config (``configs/boards/openemsstim.toml``)."""

from hw.openems.driver import OpenEmsStim
from hw.openems.settings import OpenEmsSettings, load_settings

__all__ = ["OpenEmsSettings", "OpenEmsStim", "load_settings"]
