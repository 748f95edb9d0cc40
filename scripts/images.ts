// npm run images: builds the four Raven images from their Dockerfiles into OCI archives under ~/.cache/raven-ts/images
// (rebuilt only when their inputs change), then prints each one's size and contents.
import { ensureRavenImages } from '@raven/testbed';

const started = Date.now();
const images = await ensureRavenImages();
for (const [app, image] of Object.entries(images)) {
  console.log(`\n${image.reference}  ${(image.sizeBytes / 2 ** 20).toFixed(1)} MiB uncompressed  (${app})`);
  console.log(`  archive: ${image.archive}`);
  for (const line of image.contents) console.log(`  ${line}`);
}
console.log(`\nimages ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
