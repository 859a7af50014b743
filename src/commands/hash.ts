import { hashImage } from '../index.js';
import { print, printJson } from './output.js';

export async function run(image: string, opts: { size?: number; json?: boolean }): Promise<void> {
  const result = await hashImage(image, opts.size);
  if (opts.json) printJson({ image, ...result });
  else print(`${result.hash}  ${image} (${result.size} bytes)`);
}
