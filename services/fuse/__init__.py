"""samplescout fuse stage: merge structures of all frames in holder mm, localize samples."""

from samplescout.fuse.localize import LocalizeConfig, localize
from samplescout.fuse.state import FuseState

__all__ = ["FuseState", "LocalizeConfig", "localize"]
