"""The zoo's networks as torch modules. Only the builders of the family modules import them, when a network is
built: reading the registry (names, knobs, grids, published tables) needs no torch."""
