"""The BK-Pose training recipe (focal L2 loss, multi-scale supervision): `bkpose-train`. Needs torch."""
