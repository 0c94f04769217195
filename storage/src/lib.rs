//! Respite's storage engine. No sockets, no RESP: usable as an embedded library.
