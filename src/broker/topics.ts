/**
 * Every MQTT topic forecastd publishes or subscribes to (besides the users' own reading topics, which come from
 * `ingest.topics`). One place, so that the README, Home Assistant discovery, the CLI and the tests agree.
 *
 *   <baseTopic>/availability              online / offline (retained; offline is the last will)
 *   <baseTopic>/status                    the daemon's status document (retained)
 *   publish.topicTemplate                 each forecast (default <baseTopic>/<forecast>/forecast, retained)
 *   <baseTopic>/<forecast>/summary        the Home Assistant summary of a forecast (retained)
 *   <baseTopic>/<forecast>/accuracy       live accuracy of a forecast (retained)
 *   <baseTopic>/<forecast>/train          in: a request to train now
 *   <discoveryPrefix>/status              in: Home Assistant's birth message
 *   <discoveryPrefix>/sensor/<node>/<id>/config   Home Assistant discovery (retained)
 *   $SYS/broker/publish/messages/dropped  in: Mosquitto's count of dropped messages
 */
export const availabilityTopic = (baseTopic: string) => `${baseTopic}/availability`;

export const statusTopic = (baseTopic: string) => `${baseTopic}/status`;

export function forecastTopic(template: string, baseTopic: string, forecast: string): string {
  return template.replaceAll('{baseTopic}', baseTopic).replaceAll('{forecast}', forecast);
}

export const summaryTopic = (baseTopic: string, forecast: string) => `${baseTopic}/${forecast}/summary`;

export const accuracyTopic = (baseTopic: string, forecast: string) => `${baseTopic}/${forecast}/accuracy`;

/** Where a training of one forecast can be requested over MQTT, as zigbee2mqtt takes bridge requests. */
export const trainRequestTopic = (baseTopic: string, forecast: string) => `${baseTopic}/${forecast}/train`;

export const homeAssistantBirthTopic = (discoveryPrefix: string) => `${discoveryPrefix}/status`;

export const homeAssistantDiscoveryTopic = (discoveryPrefix: string, node: string, objectId: string) =>
  `${discoveryPrefix}/sensor/${node}/${objectId}/config`;

export const BROKER_DROPPED_TOPIC = '$SYS/broker/publish/messages/dropped';
