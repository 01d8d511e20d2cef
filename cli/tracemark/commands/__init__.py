"""Sub-commands of `tracemark`; one module each (see tracemark.main)."""
