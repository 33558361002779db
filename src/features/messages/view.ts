export { toMessageView } from "../../wire/views.ts";
