import { Elysia } from "elysia";
import type { ServiceDeps } from "./deps.ts";
import { commandTable, type CommandTable } from "../channel/commands.ts";
import { handlerTable, type EphemeralHandler, type EventHandler, type HandlerTable } from "../channel/handlers.ts";
import { healthController, type HealthInfo } from "./health/http.ts";
import { channelsController } from "./channels/http.ts";
import { ChannelService } from "./channels/service.ts";
import { channelCommands } from "./channels/commands.ts";
import { channelHandlers } from "./channels/ingest.ts";
import { messagesController } from "./messages/http.ts";
import { MessageService } from "./messages/service.ts";
import { messageHandlers } from "./messages/ingest.ts";
import { relationsController } from "./relations/http.ts";
import { RelationsService } from "./relations/service.ts";
import { relationCommands } from "./relations/commands.ts";
import { relationHandlers } from "./relations/ingest.ts";
import { membersController } from "./members/http.ts";
import { MemberService } from "./members/service.ts";
import { memberCommands } from "./members/commands.ts";
import { memberHandlers } from "./members/ingest.ts";
import { pinsController } from "./pins/http.ts";
import { PinService } from "./pins/service.ts";
import { pinCommands } from "./pins/commands.ts";
import { pinHandlers } from "./pins/ingest.ts";
import { archiveController } from "./archive/http.ts";
import { archiveCommands } from "./archive/commands.ts";
import { agentsController } from "./agents/http.ts";
import { AgentService } from "./agents/service.ts";
import { presenceController } from "./presence/http.ts";
import { presenceCommands } from "./presence/commands.ts";
import { typingHandler } from "./presence/typing.ts";
import { receiptHandler } from "./presence/receipts.ts";
import { searchController } from "./search/http.ts";
import { SearchService } from "./search/service.ts";
import { filesController } from "./files/http.ts";
import { FileService } from "./files/service.ts";
import type { VoiceLimits } from "./voice/analyse.ts";
import { reconcileCommands } from "./reconcile/commands.ts";
import { mentionsController } from "./mentions/http.ts";
import { MentionService } from "./mentions/service.ts";
import { callsController } from "./calls/http.ts";
import { CallService } from "./calls/service.ts";
import { callHandlers } from "./calls/ingest.ts";
import { callCommands } from "./calls/commands.ts";
import { spacesController } from "./spaces/http.ts";
import { SpaceService } from "./spaces/service.ts";
import { spaceHandlers } from "./spaces/ingest.ts";
import { previewCommands } from "./previews/commands.ts";
import { PreviewImageService, previewsController } from "./previews/http.ts";

/** What the controllers are built from: the services' deps and a few settings of the process. */
export interface FeatureDeps extends ServiceDeps {
  health: HealthInfo;
  maxUploadBytes: number;
  /** How long a voice message may last and how long reading one may take. */
  voiceLimits?: VoiceLimits;
}

/**
 * One feature: the named commands it runs inside a channel's loop, and the Matrix event kinds
 * it handles (each kind has one handler, checked at start-up). Its HTTP controller is in
 * featureRoutes below, chained so that the API's type (App) keeps every route.
 */
export interface Feature {
  name: string;
  commands?: CommandTable;
  handlers?: EventHandler[];
  ephemeral?: EphemeralHandler[];
}

/** THE list of features, in the order their routes are registered. */
export function features(): Feature[] {
  return [
    { name: "health" },
    { name: "channels", commands: channelCommands, handlers: channelHandlers },
    { name: "messages", handlers: messageHandlers },
    { name: "relations", commands: relationCommands, handlers: relationHandlers },
    { name: "members", commands: memberCommands, handlers: memberHandlers },
    { name: "pins", commands: pinCommands, handlers: pinHandlers },
    { name: "archive", commands: archiveCommands },
    { name: "agents" },
    { name: "presence", commands: presenceCommands, ephemeral: [typingHandler, receiptHandler] },
    { name: "search" },
    { name: "mentions" },
    { name: "spaces", handlers: spaceHandlers },
    { name: "files" },
    { name: "reconcile", commands: reconcileCommands },
    { name: "calls", commands: callCommands, handlers: callHandlers },
    { name: "previews", commands: previewCommands },
  ];
}

/** The channels' command and event-handler tables; a name or kind claimed twice throws here, at start-up. */
export function channelTables(list: Feature[] = features()): { commands: CommandTable; handlers: HandlerTable } {
  return {
    commands: commandTable(list.flatMap((f) => (f.commands ? [f.commands] : []))),
    handlers: handlerTable(
      list.flatMap((f) => f.handlers ?? []),
      list.flatMap((f) => f.ephemeral ?? []),
    ),
  };
}

/** Every feature's controller, in the order of the list above. */
export function featureRoutes(d: FeatureDeps) {
  return new Elysia({ name: "features" })
    .use(healthController(d.health))
    .use(channelsController(new ChannelService(d)))
    .use(messagesController(new MessageService(d)))
    .use(relationsController(new RelationsService(d)))
    .use(membersController(new MemberService(d)))
    .use(pinsController(new PinService(d)))
    .use(archiveController(d))
    .use(agentsController(new AgentService(d)))
    .use(presenceController(d))
    .use(searchController(new SearchService(d)))
    .use(mentionsController(new MentionService(d)))
    .use(spacesController(new SpaceService(d)))
    .use(filesController(new FileService(d, d.maxUploadBytes, d.voiceLimits)))
    .use(callsController(new CallService(d)))
    .use(previewsController(new PreviewImageService(d)));
}
