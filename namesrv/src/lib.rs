//! Name server.
