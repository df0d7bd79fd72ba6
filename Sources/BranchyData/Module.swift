// BranchyData
