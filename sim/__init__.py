"""fedxnor.sim."""
