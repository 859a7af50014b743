/**
 * The XML side of Omaha's codecs: one way to read untrusted bodies and one way to write them.
 *
 * Reading: attributes as plain strings (nothing converted to numbers behind our back), the five
 * predefined entities and character references decoded, and no DOCTYPE: it is the one way to
 * declare more entities (and to expand them without bound), so a body with one is refused before
 * the parser sees it, as is a body over its limit.
 */
import { XMLBuilder, XMLParser } from 'fast-xml-parser';

export type XmlNode = Record<string, unknown>;

/** A reader of bodies where the elements named `repeating` always come as arrays. */
export function untrustedXml(repeating: readonly string[], maxBytes: number, what: string): (body: string) => XmlNode | string {
  const parser = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '',
    processEntities: true,
    htmlEntities: false,
    allowBooleanAttributes: true,
    parseAttributeValue: false,
    parseTagValue: false,
    // Elements only: the postinstall action has an `event` attribute of its own.
    isArray: (name: string, _path: unknown, _leaf: unknown, isAttribute: boolean) => !isAttribute && repeating.includes(name),
  });
  return (body) => {
    if (body.length > maxBytes) return `${what} body over ${maxBytes} bytes`;
    if (/<!DOCTYPE|<!ENTITY/i.test(body)) return `a DOCTYPE or entity declaration in the ${what}`;
    try {
      const doc = parser.parse(body, true) as unknown;
      return typeof doc === 'object' && doc !== null ? (doc as XmlNode) : {};
    } catch (err) {
      return `${what} is not well-formed XML: ${(err as Error).message.split('\n')[0]}`;
    }
  };
}

/** `v` as an element node (an empty element parses as ''). */
export const nodeOf = (v: unknown): XmlNode => (typeof v === 'object' && v !== null ? (v as XmlNode) : {});

const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@', suppressEmptyNode: true, suppressBooleanAttributes: false, processEntities: true });

/** `body` (attributes as `@name` keys) as a document with its XML declaration. */
export function writeXml(body: XmlNode): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${builder.build(body) as string}`;
}
