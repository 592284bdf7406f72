"""fedxnor.hw."""
