// A template function's code as the twin unpacks it: from the zip its Code names in S3, into its own folder.
import fs from 'node:fs';
import path from 'node:path';
import AdmZip from 'adm-zip';
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { s3CodeOf, unpackFunctionCode } from '../../twin/lambda/function-code';
import { startEmulators, type Emulators } from '../support/emulators';
import { tempDir } from '../support/local-grid';

let emulators: Emulators;
beforeAll(async () => {
  emulators = await startEmulators({ s3: true });
}, 60_000);
afterAll(async () => {
  await emulators?.stop();
});

it('unpacks the zip named by the function Code into <dir>/<function id> and returns that folder', async () => {
  const s3 = emulators.clients().s3;
  try {
    const zip = new AdmZip();
    zip.addFile('index.js', Buffer.from('exports.handler = async () => 1;\n'));
    zip.addFile('lib/util.js', Buffer.from('module.exports = 2;\n'));
    await s3.send(new CreateBucketCommand({ Bucket: 'bootstrap' }));
    await s3.send(new PutObjectCommand({ Bucket: 'bootstrap', Key: 'assets/abc.zip', Body: zip.toBuffer() }));
    const dir = tempDir();

    const code = s3CodeOf('Reaper', { S3Bucket: 'bootstrap', S3Key: 'assets/abc.zip' });
    const taskRoot = await unpackFunctionCode(s3, code, dir, 'Reaper');

    expect(taskRoot).toBe(path.join(dir, 'Reaper'));
    expect(fs.readFileSync(path.join(taskRoot, 'lib', 'util.js'), 'utf8')).toBe('module.exports = 2;\n');
    expect(fs.existsSync(path.join(taskRoot, 'index.js'))).toBe(true);
  } finally {
    s3.destroy();
  }
});

it('refuses a function whose code is not in S3, naming the function', () => {
  expect(() => s3CodeOf('Api', { ZipFile: 'exports.handler=1' })).toThrow(/Api: the twin runs functions with S3 code/);
  expect(() => s3CodeOf('Api', undefined)).toThrow(/Code.S3Bucket and Code.S3Key/);
});
