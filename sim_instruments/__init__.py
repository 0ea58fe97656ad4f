"""The virtual lab: a physical world and emulators of each instrument on top of it."""
