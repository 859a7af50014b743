/** The etcd members tests start: the fleet simulation's own (check/fleet/etcd-cluster.ts), from the build. */
export { etcdMissing, startEtcd, type EtcdCluster, type EtcdMember } from '../../dist/check/fleet/etcd-cluster.js';
