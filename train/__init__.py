"""fedxnor.train."""
