"""UID (Lu et al. 2019): disentangled blur transfer and domain-specific deblurring, learned
from unpaired sets."""
