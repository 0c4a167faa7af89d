// The bench's stand-ins process (started by bench/standins.ts): `node bin/run-ts.mjs bench/standinsMain.ts [--2mp]`.
import { startFakeOpenAI } from '../tests/support/fakeOpenAI.ts';
import { startImageServer } from '../tests/support/imageServer.ts';
import { noisyJpeg } from '../tests/support/images.ts';
import { twoMegapixel } from './pipeline.ts';

const big = process.argv.includes('--2mp');
const fake = await startFakeOpenAI();
const images = await startImageServer();
images.serve('/model.jpg', big ? await twoMegapixel('yogait-man-armsdown-office.jpg', 11) : await noisyJpeg(640, 800, 11), 'image/jpeg');
images.serve('/outfit.jpg', big ? await twoMegapixel('tfjs-yoga-warrior-beach.jpg', 12) : await noisyJpeg(640, 800, 12), 'image/jpeg');
process.stdout.write(`${JSON.stringify({ openaiBaseUrl: fake.baseURL, urls: [images.url('/model.jpg'), images.url('/outfit.jpg')] })}\n`);
process.stdin.resume();
process.stdin.once('end', () => void Promise.all([fake.close(), images.close()]).then(() => process.exit(0)));
