// Opening the backend of a repository location (src/store/location.ts): the one place that
// knows which backend serves which scheme.
import type {Backend} from './backend.js'
import {checkRepositoryPath, LocalBackend} from './local.js'
import {type RepoLocation, SCHEMES} from './location.js'

export {parseLocation, type RepoLocation} from './location.js'

/** The backend of a location. A local path that exists and is not a directory is refused here. */
export async function openBackend(location: RepoLocation): Promise<Backend> {
  if (location.scheme === 'local') {
    await checkRepositoryPath(location.path!)
    return new LocalBackend(location.path!)
  }
  return SCHEMES[location.scheme]!.open(location)
}
