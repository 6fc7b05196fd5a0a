"""namerd, the control plane: dtabs kept in a store shared by replicas, served to proxies.

* ``store`` (the DtabStore interface and the mirror every storage keeps), ``storage/`` (one module
  per backend: in memory, etcd, ZooKeeper, Kubernetes);
* ``core`` (namespace dtab ++ namerd's namers: bindings, address sets, delegation, cached per change);
* ``codec`` (the API's JSON and text shapes), ``api`` (``io.l5d.httpController``), ``http`` (the
  h11 listener: whole answers and watch streams), ``admin`` (namerd's admin endpoints).

Built from a config and run by ``runtime/namerd.py`` (``pyproxy namerd``). May import: ``errors``,
``naming``, ``discovery`` (the Kubernetes client the k8s storage shares).
"""
