// Brings up a detached box and exits, as `npm run demo -- --keep` would: argv = dir, ClusterInfo JSON, BoxTopology JSON.
import { Box } from '../src/index.ts';

const [dir, cluster, topology] = process.argv.slice(2);
const box = await Box.up({ dir: dir!, cluster: JSON.parse(cluster!), topology: JSON.parse(topology!), detached: true });
const node = box.nodes[0]!;
console.log(JSON.stringify({ netns: node.netns, wrap: node.wrap }));
process.exit(0);
