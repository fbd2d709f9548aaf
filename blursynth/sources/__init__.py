"""Where pixels come from: photo folders, videos and frame folders, rendered clips, dead leaves."""
