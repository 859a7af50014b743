// The Omaha response codec: what buildResponse writes carries what update_engine requires
// (reference notes §1.3), in go-omaha's shape; readUpdateCheck reads it back and reads a response
// as Nebraska writes it; refusals are reasons, never throws.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { COREOS_APP_ID } from '../../dist/src/omaha/codes.js';
import { buildResponse, readUpdateCheck, type OmahaResponse } from '../../dist/src/omaha/response.js';

const payload = Buffer.from('a payload');
const sha256 = createHash('sha256').update(payload).digest('base64');

const offer: OmahaResponse = {
  server: 'fastpatch', elapsedSeconds: 3600.7,
  apps: [{ appId: COREOS_APP_ID, status: 'ok', ping: true, events: 1, updateCheck: {
    status: 'ok', update: { codebases: ['http://127.0.0.1:8080/payloads/ab'], version: '1.3.0', package: { name: 'x.fpay', size: payload.length, sha256 }, isDelta: true },
  } }],
};

/** A response as Nebraska writes one (fields from its omaha.go), with attributes a client ignores. */
const NEBRASKA = `<?xml version="1.0" encoding="UTF-8"?>
<response protocol="3.0" server="nebraska"><daystart elapsed_seconds="0"></daystart>
<app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" status="ok"><event status="ok"></event><ping status="ok"></ping>
<updatecheck status="ok"><urls><url codebase="https://update.release.flatcar-linux.net/amd64-usr/3815.2.0/"></url></urls>
<manifest version="3815.2.0"><packages><package name="flatcar_production_update.gz" hash="bbb" size="465881871" required="true"></package></packages>
<actions><action event="postinstall" sha256="${sha256}" DisplayVersion="3815.2.0" needsadmin="false" ChromeOSVersion="" deadline=""></action></actions>
</manifest></updatecheck></app></response>`;

describe('Omaha response', () => {
  it('an offer carries what update_engine requires, and reads back', () => {
    const xml = buildResponse(offer);
    expect(xml).toContain('<updatecheck status="ok">');
    expect(xml).toContain('<url codebase="http://127.0.0.1:8080/payloads/ab/"');
    expect(xml).toMatch(/<action event="postinstall" sha256="[^"]+"/);
    expect(xml).toContain('<daystart elapsed_seconds="3600"');
    expect(readUpdateCheck(xml, COREOS_APP_ID.toUpperCase())).toEqual({
      status: 'ok',
      update: { codebases: ['http://127.0.0.1:8080/payloads/ab/'], version: '1.3.0', package: { name: 'x.fpay', size: payload.length, sha256 }, isDelta: true },
    });
  });

  it('noupdate and app errors read as their status', () => {
    const none = buildResponse({ server: 's', elapsedSeconds: 0, apps: [{ appId: '{a}', status: 'ok', updateCheck: { status: 'noupdate' } }] });
    expect(readUpdateCheck(none, '{a}')).toEqual({ status: 'noupdate' });
    const unknown = buildResponse({ server: 's', elapsedSeconds: 0, apps: [{ appId: '{a}', status: 'error-unknownApplication' }] });
    expect(readUpdateCheck(unknown, '{a}')).toEqual({ status: 'app error-unknownApplication' });
  });

  it('reads a response as Nebraska writes it', () => {
    expect(readUpdateCheck(NEBRASKA, COREOS_APP_ID)).toEqual({
      status: 'ok',
      update: { codebases: ['https://update.release.flatcar-linux.net/amd64-usr/3815.2.0/'], version: '3815.2.0', package: { name: 'flatcar_production_update.gz', size: 465881871, sha256, sha1: 'bbb' } },
    });
  });

  it('refuses to build an offer update_engine would reject', () => {
    const bad = structuredClone(offer);
    bad.apps[0]!.updateCheck!.update!.package.size = 0;
    expect(() => buildResponse(bad)).toThrow(RangeError);
  });

  it.each([
    ['an update without the postinstall sha256', NEBRASKA.replace(/sha256="[^"]+"/, ''), /postinstall sha256/],
    ['another app only', NEBRASKA.replace(/appid="[^"]+"/, 'appid="{other}"'), /no app/],
    ['malformed XML', '<response><app appid="x"></response>', /well-formed/],
    ['an entity declaration', '<!DOCTYPE r [<!ENTITY a "b">]><response/>', /DOCTYPE/],
  ])('reads %s as a reason', (_name, body, why) => {
    const r = readUpdateCheck(body, COREOS_APP_ID);
    expect('unreadable' in r ? r.unreadable : '').toMatch(why);
  });
});
