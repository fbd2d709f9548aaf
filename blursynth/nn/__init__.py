"""Neural-network building blocks shared by the trainer and the learned blur."""


def count_parameters(module) -> int:
    """Number of parameters of a torch module (frozen ones too): what the README's tables and a
    run's run.json give."""
    return sum(p.numel() for p in module.parameters())
