"""dexcom-bridge: Dexcom G4 receiver to Nightscout uploader.

Imports nothing heavy: the CLI and the packages load their own dependencies.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
