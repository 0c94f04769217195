//! The `respite-server` library: config, reactors, connections and the command table.
