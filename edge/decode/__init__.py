"""Heatmaps to people: Numba peak finding, limb matching and person assembly."""

from edge.decode.decoder import Decoder, DecoderParams
from edge.decode.poses import DecodeCounters, Poses

__all__ = ["DecodeCounters", "Decoder", "DecoderParams", "Poses"]
