// The Omaha request codec: update_engine's request shape (reference notes §1.2: ping, updatecheck
// and an event in one app) is read as such; what buildRequest writes reads back the same; hostile
// bodies (entities, oversize, malformed, too many apps or events, overlong attributes) are refused
// with a reason, never a throw.
import { describe, expect, it } from 'vitest';
import { COREOS_APP_ID, EVENT_RESULT, EVENT_TYPE } from '../../dist/src/omaha/codes.js';
import { buildRequest, MAX_APPS, MAX_EVENTS, MAX_REQUEST_BYTES, parseRequest, type OmahaRequest } from '../../dist/src/omaha/request.js';

/** A request as Flatcar's update_engine sends it on the first check after an update reboot. */
const UPDATE_ENGINE = `<?xml version="1.0" encoding="UTF-8"?>
<request protocol="3.0" version="update_engine-0.4.10" updaterversion="update_engine-0.4.10" installsource="scheduler" ismachine="1">
    <os version="Chateau" platform="CoreOS" sp="3815.2.0_x86_64"></os>
    <app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" version="3815.2.0" track="beta" bootid="{c8a4e1f2-7d0a-4d6c-9a55-0f1e2d3c4b5a}" oem="ami" oemversion="0.1.1-r1" alephversion="3602.2.0" machineid="e1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6" machinealias="" lang="en-US" board="amd64-usr" hardware_class="" delta_okay="false" >
        <ping active="1"></ping>
        <updatecheck></updatecheck>
        <event eventtype="3" eventresult="2" previousversion="3760.2.0"></event>
    </app>
</request>
`;

function parsed(body: string): OmahaRequest {
  const r = parseRequest(body);
  if ('unreadable' in r) throw new Error(r.unreadable);
  return r.request;
}

const refusal = (body: string) => {
  const r = parseRequest(body);
  return 'unreadable' in r ? r.unreadable : undefined;
};

describe('Omaha request', () => {
  it('reads update_engine\'s request: ping, updatecheck and an event in one app', () => {
    const r = parsed(UPDATE_ENGINE);
    expect(r).toMatchObject({ protocol: '3.0', installSource: 'scheduler', os: { platform: 'CoreOS', version: 'Chateau', sp: '3815.2.0_x86_64' } });
    expect(r.apps).toEqual([{
      appId: COREOS_APP_ID, version: '3815.2.0', track: 'beta', machineId: 'e1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6', bootId: '{c8a4e1f2-7d0a-4d6c-9a55-0f1e2d3c4b5a}', oem: 'ami',
      ping: true, updateCheck: true,
      events: [{ type: EVENT_TYPE.UPDATE_COMPLETE, result: EVENT_RESULT.SUCCESS_REBOOT, previousVersion: '3760.2.0' }],
    }]);
  });

  it('gives missing attributes their defaults: track stable, version 0.0.0.0', () => {
    const r = parsed('<request protocol="3.0"><app appid="{x}"><updatecheck/></app></request>');
    expect(r.apps[0]).toMatchObject({ track: 'stable', version: '0.0.0.0', machineId: '', ping: false, updateCheck: true, events: [] });
  });

  it('what buildRequest writes reads back the same, with escaping', () => {
    const request: OmahaRequest = {
      protocol: '3.0', installSource: 'ondemandupdate', os: { platform: 'FastPatch' },
      apps: [{ appId: '{a&b}', version: '1.2.3', track: 'be"ta', machineId: 'm<1>', bootId: '{b}', ping: true, updateCheck: false,
        events: [{ type: 3, result: 0, errorCode: 44 }, { type: 13, result: 1 }] }],
    };
    const back = parsed(buildRequest(request));
    expect(back.apps).toEqual(request.apps);
    expect(back.installSource).toBe('ondemandupdate');
  });

  it.each([
    ['an entity declaration', '<!DOCTYPE r [<!ENTITY x "xxxxxxxx">]><request><app appid="&x;"/></request>', /DOCTYPE|entity/],
    ['a body over the limit', `<request>${' '.repeat(MAX_REQUEST_BYTES)}</request>`, /over/],
    ['malformed XML', '<request><app appid="x"></request>', /well-formed|unreadable/],
    ['no request element', '<response/>', /no <request>/],
    ['an app without appid', '<request><app version="1"/></request>', /appid/],
    ['too many apps', `<request>${'<app appid="x"/>'.repeat(MAX_APPS + 1)}</request>`, /apps/],
    ['too many events', `<request><app appid="x">${'<event eventtype="3" eventresult="1"/>'.repeat(MAX_EVENTS + 1)}</app></request>`, /events/],
    ['an overlong version', `<request><app appid="x" version="${'9'.repeat(300)}"/></request>`, /longer/],
    ['an event type that is not a number', '<request><app appid="x"><event eventtype="three" eventresult="1"/></app></request>', /whole number/],
    ['an event without a result', '<request><app appid="x"><event eventtype="3"/></app></request>', /eventresult/],
  ])('refuses %s, with a reason', (_name, body, why) => {
    expect(refusal(body)).toMatch(why);
  });

  it('never throws on random bytes and cut requests', () => {
    for (let cut = 0; cut < UPDATE_ENGINE.length; cut += 7) expect(() => parseRequest(UPDATE_ENGINE.slice(0, cut))).not.toThrow();
    let seed = 7;
    for (let i = 0; i < 200; i++) {
      const chars = Array.from({ length: 64 }, () => String.fromCharCode(((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) % 128));
      expect(() => parseRequest(`<request>${chars.join('')}</request>`)).not.toThrow();
    }
  });
});
