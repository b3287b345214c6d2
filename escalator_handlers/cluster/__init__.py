"""Several monitoring nodes feeding one logical collector, on etcd."""
