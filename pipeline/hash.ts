// Content hashes for manifests: config hashes (canonical JSON, so key order does not matter) and
// file checksums.
import { createHash } from 'node:crypto';

/** JSON with object keys sorted at every level, so equal configs serialize equally. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object' && !ArrayBuffer.isView(v)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v as Record<string, unknown>).sort()) out[k] = sortKeys((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Short, stable hash of a config object. */
export function configHash(config: unknown): string {
  return sha256Hex(canonicalJson(config ?? null)).slice(0, 16);
}
