// Types of contract.mjs, for the drift test (the SDK's tsconfig does not check JavaScript).
export declare const sdkDir: string;
export declare const gatewayDir: string;
export declare function buildGatewayOpenApi(load: (module: string) => Promise<any>): Promise<Record<string, any>>;
export declare function contractFiles(document: Record<string, any>): Promise<Record<string, string>>;
export declare function writeContractFiles(files: Record<string, string>): void;
