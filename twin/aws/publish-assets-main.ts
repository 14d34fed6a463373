// Publishes a cloud assembly's file assets the way `cdk deploy` does, with the CDK's own asset publishing library
// (@aws-cdk/cdk-assets-lib, what the cdk CLI and cdk-assets run): credentials, region and endpoints from the
// environment, the bootstrap roles assumed through STS. Run as its own process by deploy-assets.ts.
//   publish-assets-main.ts <asset manifest> <asset id>...
import { AssetManifest, AssetPublishing, DefaultAwsClient, DestinationPattern } from '@aws-cdk/cdk-assets-lib';

async function main(): Promise<void> {
  const [manifestFile, ...ids] = process.argv.slice(2);
  if (!manifestFile) throw new Error('usage: publish-assets-main <asset manifest> <asset id>...');
  const manifest = AssetManifest.fromPath(manifestFile).select(ids.map((id) => DestinationPattern.parse(id)));
  const publishing = new AssetPublishing(manifest, {
    aws: new DefaultAwsClient(),
    throwOnError: true,
    progressListener: { onPublishEvent: (type, event) => process.stdout.write(`${type}: ${event.message}\n`) },
  });
  await publishing.publish();
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
