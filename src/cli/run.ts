// What bin/run.js loads after it has set V8's flags: oclif's entry point. In the built CLI this
// module and the command table are the two entry points of one bundle (bundle.mjs), so they share
// a single copy of oclif with the commands.
export {execute} from '@oclif/core/execute'
