//! The grpc-web gateway as a library (being built).
