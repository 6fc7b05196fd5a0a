"""namerd's dtab storages, one module each: ``memory`` (io.l5d.inMemory), ``etcd`` (io.l5d.etcd,
etcd's v2 keys API), ``zk`` (io.l5d.zk, with kazoo), ``k8s`` (io.l5d.k8s, the dtabs.l5d.io custom
resource). Each is a :class:`~pyproxy.namerd.store.DtabStore` that keeps a mirror of its backend.
"""
