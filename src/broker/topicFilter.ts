/**
 * MQTT topic filter matching (MQTT 3.1.1 §4.7, MQTT 5 §4.7): `+` one level, `#` this level and every one below,
 * and topics starting with `$` are not matched by a filter starting with a wildcard. A shared subscription
 * (`$share/<group>/<filter>`) matches what its inner filter matches.
 */
export function topicMatches(filter: string, topic: string): boolean {
  const inner = filter.startsWith('$share/') ? filter.split('/').slice(2).join('/') : filter;
  const filterLevels = inner.split('/');
  const topicLevels = topic.split('/');
  if (topic.startsWith('$') && (filterLevels[0] === '+' || filterLevels[0] === '#')) return false;
  for (let index = 0; index < filterLevels.length; index++) {
    const level = filterLevels[index];
    if (level === '#') return true;
    if (index >= topicLevels.length) return false;
    if (level !== '+' && level !== topicLevels[index]) return false;
  }
  return filterLevels.length === topicLevels.length;
}
