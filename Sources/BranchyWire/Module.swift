// BranchyWire
