// BranchyModel
