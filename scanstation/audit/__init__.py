"""The station's audit trail: every action as a leaf of a Merkle tree, with signed checkpoints."""
