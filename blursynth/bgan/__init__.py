"""Learned blur: the BGAN generator of "Deblurring by Realistic Blurring" (Zhang et al. 2020).

``model`` holds the networks, ``losses`` the relativistic blur loss, ``data`` the unpaired image
sets, ``train`` the training run and ``sample`` the pair writer behind ``blursynth bgan blur``.
"""
