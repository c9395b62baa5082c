"""Observation keys that more than one layer reads, defined once."""

STATE_KEY = "state"  # the privileged simulator state (hand-cube env): asymmetric critics read it, policies never
IMAGE_KEY = "image"  # an HxWx3 uint8 camera image (PixelObservation, the hand's tiled cameras, world models)
