"""Learning: one training loop and the learners it drives (REINFORCE, halving, ttts)."""
