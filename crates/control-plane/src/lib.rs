//! AtlasAI control plane.
