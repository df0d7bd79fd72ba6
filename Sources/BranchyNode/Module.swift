// BranchyNode
