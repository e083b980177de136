//! Cluster mode (below).
