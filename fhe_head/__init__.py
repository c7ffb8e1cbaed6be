"""Server-side FHE siamese head (Concrete-ML). Not built yet: see the FHE-head issue."""
