//! Contract harness for the vertex dialect (not implemented yet).
