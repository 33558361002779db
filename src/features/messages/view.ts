export { toMessageView } from "../../store/views.ts";
