/**
 * The etcd endpoint list (ETCD_ENDPOINTS in update.conf, --etcd), parsed apart from the client so
 * that reading update.conf does not load the etcd client (gRPC) into every `fastpatch update`.
 * Pure.
 */
import { FastPatchError } from '../errors.js';
import { escapeText } from '../text.js';

/** Parses `http://a:2379,http://b:2379` (ETCD_ENDPOINTS, --etcd). Throws FastPatchError('USAGE'). */
export function parseEndpoints(list: string): string[] {
  const endpoints = list.split(',').map((e) => e.trim()).filter((e) => e !== '');
  if (endpoints.length === 0 || endpoints.length > 16 || endpoints.some((e) => !/^https?:\/\/[A-Za-z0-9.[\]:-]{1,300}\/?$/.test(e))) {
    throw new FastPatchError('USAGE', `etcd endpoints must be 1-16 http(s)://host:port URLs, comma-separated; got "${escapeText(list.slice(0, 200))}"`);
  }
  return endpoints;
}
