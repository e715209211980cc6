// SPDX-License-Identifier: MIT
// Reflector as a library: what a media server embeds. The server
// (`reflector serve`) is built from the same pieces.

// errors and addresses
export { ReflectorError, type ReflectorErrorCode } from './errors';
export { parseEndpoint, parsePrefix, formatEndpoint, type Endpoint, type Prefix, type Family } from './net/address';
export { checkName, nameProblem, type NameKind } from './names';

// the engine and its shared region
export { Engine, type EngineOptions, type Backend } from './engine/engine';
export { Region, type RegionParams } from './region/region';
export { Lane, type Destination, type PacketDesc } from './region/lane';
export { monotonicNs } from './monotonic';

// files shipped in the package (the .proto, deploy/), found from its root
export { PACKAGE_ROOT, packagePath } from './paths';

// next hops
export { resolveNextHop, NextHopCache, type NextHop, type NextHopOptions } from './net/neighbour';
export { makeDestination, type DestinationOptions } from './net/destination';
export { enableLoopbackDelivery } from './net/loopback';

// technique 1: aggregate timed transmit, and on-demand sessions built on it
export { Aggregate, type AggregateOptions } from './aggregate/aggregate';
export type { TxTime, SeqTime, OffsetTime, AbsoluteTime, RangeTime, TimeUnit } from './aggregate/time';
export { SessionManager, type SessionManagerOptions, type SessionStartOptions, type WorkerDeath } from './session/manager';
export { loadMedia, type MediaFormat } from './media/load';

// techniques 2 and 3: redirect and split by a policy table
export { Relays, type RelaysOptions, type RelaySpecInput, type OutputOptions, type RelayInfo, type RelayLimit, type RelaysEvent } from './relay/relays';

// the server and its control API
export { Server, type ServerOptions } from './server/server';
export { ServerEvents, type ServerEvent, type StampedEvent } from './server/events';
export { ControlClient, ControlWatch, type ControlTarget, type ClientTls } from './control/client';
export { ControlError, type Command, type Result, type RelayInfo as ControlRelayInfo, type SessionInfo, type StatsResult } from './control/types';
export { protoPath } from './control/proto';
export { loadConfig, parseConfig, ConfigError } from './config/validate';
export type { Config } from './config/schema';
