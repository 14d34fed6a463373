// A template function's code as Lambda gets it: the zip its `Code` names in the bootstrap bucket, unpacked into a folder.
import fs from 'node:fs';
import path from 'node:path';
import AdmZip from 'adm-zip';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { TwinTemplateError } from '../errors';

export interface FunctionCode {
  readonly bucket: string;
  readonly key: string;
}

/** Where a function's code lies, from its resolved `Code` property; the twin runs functions with S3 code only. */
export function s3CodeOf(functionId: string, code: unknown): FunctionCode {
  const { S3Bucket: bucket, S3Key: key } = (code ?? {}) as { S3Bucket?: unknown; S3Key?: unknown };
  if (typeof bucket !== 'string' || !bucket || typeof key !== 'string' || !key) {
    throw new TwinTemplateError(`${functionId}: the twin runs functions with S3 code (Code.S3Bucket and Code.S3Key)`);
  }
  return { bucket, key };
}

/** Downloads the function's zip and unpacks it into `<dir>/<functionId>`, its task root, which it returns. */
export async function unpackFunctionCode(
  s3: S3Client,
  code: FunctionCode,
  dir: string,
  functionId: string,
): Promise<string> {
  const object = await s3.send(new GetObjectCommand({ Bucket: code.bucket, Key: code.key }));
  const taskRoot = path.join(dir, functionId);
  fs.mkdirSync(taskRoot, { recursive: true });
  new AdmZip(Buffer.from(await object.Body!.transformToByteArray())).extractAllTo(taskRoot, true);
  return taskRoot;
}
