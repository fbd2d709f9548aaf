"""Neural-network building blocks shared by the trainer and the learned blur."""
